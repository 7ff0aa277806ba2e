#!/bin/sh
# test-mpi-pair.sh - make check: the MPI-style pair moves messages intact
# through cached attachments.
. "${UXP_SRCDIR:-.}/examples/example-env.sh"

run_example mpi_pair 100 2
expect 'rank 0: received 100 messages.* 0 bad words'
expect 'rank 1: received 100 messages.* 0 bad words'
expect 'hits'
expect 'mpi_pair: OK'
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]
