#!/bin/sh
# test-demo.sh - make check: the README demo runs and proves both directions.
. "${UXP_SRCDIR:-.}/examples/example-env.sh"

run_example demo 16
expect 'message: "hello from exporter'
expect 'all numbers as expected'
expect 'GB/s'
expect 'reply in my buffer: "hello back from importer'
expect 'demo OK'
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]
