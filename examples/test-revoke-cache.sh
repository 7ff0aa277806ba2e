#!/bin/sh
# test-revoke-cache.sh - make check: the attachment cache drops a peer's
# entries on its revocation event and later lookups fail cleanly.
. "${UXP_SRCDIR:-.}/examples/example-env.sh"

run_example revoke_cache
expect 'rank 0: 6 messages, 3 cached entries, 3 misses, 3 hits, 0 bad words'
expect 'reason removed.*dropping 3 cached attachments'
expect 'after the removal: 0 cached entries of peer 1, apid released'
expect 'lookup after revocation: failed cleanly'
expect 'revoke_cache: OK'
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]
