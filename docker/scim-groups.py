"""Creates the SCIM groups that docker/syncd.yaml maps roles to, for the compose demo.

syncd manages memberships of existing groups only and never creates a group, and the
demo SCIM server keeps everything in memory, so this one-shot job runs before syncd
starts. Usage: python scim-groups.py BASE_URL TOKEN_FILE DISPLAY_NAME...
"""

import json
import sys
import time
import urllib.parse
import urllib.request

GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


def call(url: str, token: str, body: dict | None = None) -> dict:
    # the base URL comes from compose.yaml; refuse anything that is not HTTP
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an HTTP URL: {url}")
    request = urllib.request.Request(  # noqa: S310
        url,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.load(response)


def main(base: str, token_file: str, names: list[str]) -> None:
    with open(token_file, encoding="utf-8") as f:
        token = f.read().strip()
    # the server installs itself with pip on start: give it a minute
    for _ in range(60):
        try:
            call(f"{base}/ServiceProviderConfig", token)
            break
        except OSError:
            time.sleep(1)
    for name in names:
        query = urllib.parse.urlencode({"filter": f'displayName eq "{name}"'})
        if call(f"{base}/Groups?{query}", token).get("totalResults"):
            print(f"group {name} exists")
            continue
        call(f"{base}/Groups", token, {"schemas": [GROUP], "displayName": name})
        print(f"group {name} created")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
