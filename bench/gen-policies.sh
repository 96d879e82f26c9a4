#!/usr/bin/env bash
# bench/gen-policies.sh NPOLICIES NENTITIES OUTDIR — a Cedar policy set for the benchmarks:
# the example policies (examples/policies, 13) plus NPOLICIES generated ones in
# OUTDIR/90-generated.cedar, and OUTDIR/entities.json = the example entities plus NENTITIES
# generated ones. The generated policies are about other teams and Jira projects, in four
# shapes that cycle, so that a decision for alice reading OPS-12 meets every kind:
#   0  permit scoped to one team and one project        (skipped by the scope index)
#   1  forbid writes in one project without an intent   (skipped: action and resource scope)
#   2  forbid reads of issues of one project by others  (unscoped resource type: its
#      condition is evaluated for every Jira issue read — the cost that grows)
#   3  permit reads and prompts for one team from loopback (principal-scoped)
# The generated entities cycle over Group team-K (in staff), Jira::Project PRJK (readers
# and writers team-K) and User user-K (in team-K). alice's read of OPS-12 stays allowed.
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 NPOLICIES NENTITIES OUTDIR" >&2; exit 2; }
np=$1 ne=$2 out=$3
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
cp "$root"/examples/policies/*.cedar "$out/"
awk -v n="$np" 'BEGIN {
  for (k = 0; k < n; k++) {
    printf "@id(\"gen-%d\")\n@reason(\"GENERATED\")\n", k
    s = k % 4
    if (s == 0) printf "permit (principal in Group::\"team-%d\", action in Action::\"risk:read\", resource in Jira::Project::\"PRJ%d\");\n\n", k, k
    else if (s == 1) printf "forbid (principal, action in Action::\"jira:write\", resource in Jira::Project::\"PRJ%d\")\nunless { context has intent };\n\n", k
    else if (s == 2) printf "forbid (principal, action in Action::\"risk:read\", resource is Jira::Issue)\nwhen { resource has project && resource.project == Jira::Project::\"PRJ%d\" && !(principal in Group::\"team-%d\") };\n\n", k, k
    else printf "permit (principal in Group::\"team-%d\", action in [Action::\"risk:read\", Action::\"mcp:prompts/get\"], resource)\nwhen { context has clientIp && context.clientIp.isLoopback() };\n\n", k
  }
}' > "$out/90-generated.cedar"
{
  sed '$d' "$root/examples/policies/entities.json" # everything but the closing ]
  awk -v n="$ne" 'BEGIN {
    for (j = 0; j < n; j++) {
      k = int(j / 3); s = j % 3
      if (s == 0) printf ",\n  {\"uid\": {\"type\": \"Group\", \"id\": \"team-%d\"}, \"attrs\": {}, \"parents\": [{\"type\": \"Group\", \"id\": \"staff\"}]}", k
      else if (s == 1) printf ",\n  {\"uid\": {\"type\": \"Jira::Project\", \"id\": \"PRJ%d\"}, \"attrs\": {\"readers\": [{\"__entity\": {\"type\": \"Group\", \"id\": \"team-%d\"}}], \"writers\": [{\"__entity\": {\"type\": \"Group\", \"id\": \"team-%d\"}}]}, \"parents\": []}", k, k, k
      else printf ",\n  {\"uid\": {\"type\": \"User\", \"id\": \"user-%d\"}, \"attrs\": {\"email\": \"user-%d@acme.example\"}, \"parents\": [{\"type\": \"Group\", \"id\": \"team-%d\"}]}", k, k, k
    }
    printf "\n]\n"
  }'
} > "$out/entities.json"
