// SCIMMY + its Express routers over two in-memory maps, wired as their READMEs show;
// started by tests/servers/scimmy.py. Everything SCIM (parsing, validation, filters,
// PATCH, bulk, sorting, paging, errors) is SCIMMY's; the handlers below only do what a
// store has to: ids, meta dates, 404 for an unknown id, 409 for a taken userName,
// User.groups read from the groups, and members dropped when their user is deleted.
// Environment: SCIM_TOKEN (the bearer token), SCIM_PORT_FILE (written with the port
// once listening), SCIM_CONFIG (JSON given to SCIMMY.Config.set).
import {randomUUID} from "node:crypto";
import {writeFileSync} from "node:fs";
import express from "express";
import SCIMMY from "scimmy";
import SCIMMYRouters from "scimmy-routers";

const token = process.env.SCIM_TOKEN;
const SCIMError = SCIMMY.Types.Error;
const notFound = (id) => new SCIMError(404, null, `Resource ${id} not found`);

const stores = {User: new Map(), Group: new Map()};
const copy = (value) => structuredClone(value);

function egress(type, decorate = (r) => r) {
    return (resource) => {
        const store = stores[type];
        if (resource.id) {
            if (!store.has(resource.id)) throw notFound(resource.id);
            return decorate(copy(store.get(resource.id)));
        }
        const all = [...store.values()].map((r) => decorate(copy(r)));
        return resource.filter ? resource.filter.match(all) : all;
    };
}

function ingress(type, check = () => {}, decorate = (r) => r) {
    return (resource, instance) => {
        const store = stores[type];
        if (resource.id && !store.has(resource.id)) throw notFound(resource.id);
        const data = JSON.parse(JSON.stringify(instance));
        check(data, resource.id);
        const now = new Date().toISOString();
        const id = resource.id ?? randomUUID();
        const created = resource.id ? store.get(id).meta.created : now;
        const record = {...data, id, meta: {created, lastModified: now}};
        delete record.groups;
        store.set(id, record);
        // As egress reads it: SCIMMY tells a PATCH that changed nothing (204) by comparing.
        return decorate(copy(record));
    };
}

function degress(type) {
    return (resource) => {
        if (!stores[type].delete(resource.id)) throw notFound(resource.id);
        if (type === "User") for (const group of stores.Group.values())
            group.members = (group.members ?? []).filter((m) => m.value !== resource.id);
    };
}

function uniqueUserName(data, id) {
    const name = String(data.userName ?? "").toLowerCase();
    for (const user of stores.User.values()) {
        if (user.id !== id && String(user.userName).toLowerCase() === name)
            throw new SCIMError(409, "uniqueness", `userName '${data.userName}' is already in use`);
    }
}

// User.groups is readOnly: read from the groups' members on the way out.
function withGroups(user) {
    const groups = [...stores.Group.values()]
        .filter((g) => (g.members ?? []).some((m) => m.value === user.id))
        .map((g) => ({value: g.id, display: g.displayName, type: "direct"}));
    return groups.length ? {...user, groups} : user;
}

SCIMMY.Resources.declare(SCIMMY.Resources.User, {
    extensions: [{schema: SCIMMY.Schemas.EnterpriseUser, required: false}],
    ingress: ingress("User", uniqueUserName, withGroups),
    egress: egress("User", withGroups),
    degress: degress("User"),
});
SCIMMY.Resources.declare(SCIMMY.Resources.Group, {
    ingress: ingress("Group"), egress: egress("Group"), degress: degress("Group"),
});

const app = express();
let base = "";
app.use("/scim/v2", new SCIMMYRouters({
    type: "bearer",
    handler: (request) => {
        if (request.header("Authorization") !== `Bearer ${token}`)
            throw new Error("Bearer token required");
        return "syncd";
    },
    baseUri: () => base,
}));
SCIMMY.Config.set(JSON.parse(process.env.SCIM_CONFIG || "{}"));
// scimmy-routers answers a 5xx itself, then passes the exception on: log it, answer nothing more.
app.use((error, request, response, next) => console.error(error));

const server = app.listen(0, "127.0.0.1", () => {
    const {port} = server.address();
    base = `http://127.0.0.1:${port}`;
    console.log(`scimmy listening on ${base}/scim/v2 (node ${process.version})`);
    writeFileSync(process.env.SCIM_PORT_FILE, String(port));
});
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));
