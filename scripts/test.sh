#!/usr/bin/env bash
# The test command (npm test): type and lint checks, then the whole suite under Node and under Deno.
# Runs with the process TZ set away from UTC so any use of the JS clock for expiry would show.
set -uo pipefail
cd "$(dirname "$0")/.."
export TZ="${TZ:-America/New_York}"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
deno() { node_modules/.bin/deno "$@"; }
log=$(mktemp -d)
failed=0
step() { echo; echo "== $*"; }

step "format (deno fmt --check, 120 columns)"
deno fmt --check >"$log/fmt.txt" 2>&1 || { tail -40 "$log/fmt.txt"; echo "run: node_modules/.bin/deno fmt"; failed=1; }
step "type-check the web-standard core (lib DOM, no Node types)"
node_modules/.bin/tsc -p tsconfig.json || failed=1
node_modules/.bin/tsc -p tsconfig.node.json --noEmit || failed=1 # the node-condition crypto (*_node.ts)
step "deno check (core, tests, demo, CLI, Deno example, README and docs/ blocks), examples' tsc, lint, doc tests, publish dry run"
deno check mod.ts tests/*.ts tests/runtimes/*.ts demo/*.ts cli/*.ts cli/dev_proxy/*.ts examples/deno/main.ts || failed=1
deno check --doc-only README.md docs/*.md >"$log/docs.txt" 2>&1 || { cat "$log/docs.txt"; failed=1; }
node_modules/.bin/tsc -p examples/tsconfig.json || failed=1
deno lint || failed=1
deno doc --lint mod.ts || failed=1
deno test --doc --allow-all mod.ts src/ >"$log/doc.txt" 2>&1 || { cat "$log/doc.txt"; failed=1; }
deno publish --dry-run --allow-dirty >"$log/publish.txt" 2>&1 || { cat "$log/publish.txt"; failed=1; }
# What users copy must also pass the stricter settings `tsc --init` (TypeScript 5.9) gives a new project.
step "README, docs/ and examples/ with exactOptionalPropertyTypes and noUncheckedIndexedAccess"
deno check --config deno.strict.json --doc-only README.md docs/*.md >"$log/strict.txt" 2>&1 || { cat "$log/strict.txt"; failed=1; }
deno check --config deno.strict.json examples/deno/main.ts tests/_typecheck_strict.ts >"$log/strict-deno.txt" 2>&1 || { cat "$log/strict-deno.txt"; failed=1; }
node_modules/.bin/tsc -p examples/tsconfig.strict.json || failed=1

# Files that drive runtimes as child processes run only under Node's runner.
node_only="tests/runtimes.test.ts tests/package.test.ts tests/cli.test.ts tests/examples.test.ts tests/browser.test.ts"
all=$(ls tests/*.test.ts)
both=$(for f in $all; do [[ " $node_only " == *" $f "* ]] || echo "$f"; done)

step "Node: node --test"
node --import tsx --test --test-reporter=spec --test-concurrency=2 $all 2>&1 | tee "$log/node.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || failed=1
step "Deno: deno test"
deno test -A $both 2>&1 | tee "$log/deno.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || failed=1

np=$(grep -Eo '^ℹ pass [0-9]+' "$log/node.txt" | grep -Eo '[0-9]+' | tail -1)
nf=$(grep -Eo '^ℹ fail [0-9]+' "$log/node.txt" | grep -Eo '[0-9]+' | tail -1)
# Deno counts suites as tests and their cases as steps; report the cases when there are steps.
dline=$(grep -E '[0-9]+ passed' "$log/deno.txt" | tail -1)
dp=$(echo "$dline" | grep -Eo 'passed \(([0-9]+) steps\)' | grep -Eo '[0-9]+')
[ -n "$dp" ] || dp=$(echo "$dline" | grep -Eo '[0-9]+ passed' | grep -Eo '^[0-9]+')
df=$(echo "$dline" | grep -Eo '[0-9]+ failed' | grep -Eo '^[0-9]+')
echo
echo "node: ${np:-0} passed, ${nf:-?} failed; deno: ${dp:-0} passed, ${df:-?} failed"
[ -n "$np" ] && [ -n "$dp" ] || failed=1
[ "$failed" -eq 0 ] && [ "${nf:-1}" -eq 0 ] && [ "${df:-1}" -eq 0 ] || { echo "tests: $(( ${np:-0} + ${dp:-0} )) passed, $(( ${nf:-0} + ${df:-0} + 1 )) failed"; exit 1; }
echo "tests: $(( np + dp )) passed, 0 failed"
