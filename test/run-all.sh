#!/usr/bin/env bash
# The README's test command (`npm test`): type check, unit tests, then every network test
# (werift peers, real ffmpeg, real Chromium) inside a private network namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== type check"
npx tsc --noEmit -p .
echo "== build player pages"
npx vite build --config player/vite.config.ts --logLevel warn
echo "== unit + network tests (inside a private network namespace)"
bash test/netns.sh npx vitest run
