#!/bin/bash
# Run once by the OpenLDAP container after its first initialisation
# (/docker-entrypoint-initdb.d): makes cn=default,ou=policies the default password
# policy. The image loads the ppolicy overlay (LDAP_CONFIGURE_PPOLICY) but sets no
# default, and without one OpenLDAP ignores pwdAccountLockedTime, so accounts syncd
# disabled could still bind.
set -eu
. /opt/bitnami/scripts/libopenldap.sh
eval "$(ldap_env)"
# the image's setup stops slapd after initialising and again when this script is done
ldap_start_bg
ldapmodify -Q -Y EXTERNAL -H ldapi:/// <<'LDIF'
dn: olcOverlay={0}ppolicy,olcDatabase={2}mdb,cn=config
changetype: modify
replace: olcPPolicyDefault
olcPPolicyDefault: cn=default,ou=policies,dc=example,dc=test
LDIF
