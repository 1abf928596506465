#!/bin/bash
# Kiln's guest agent. Runs the test steps Kiln resolved on the host (plan/NNNN/{meta,run} on the test
# disk), one after another, with AWSTOE's onFailure / maxAttempts / timeoutSeconds, and writes each
# step's results to results/NNNN/ on the same disk. Console lines "KILN-<nonce> ..." are progress
# markers Kiln reads live from the serial port; everything else on the console is step output.
set -u
disk=${1:?usage: agent.sh TEST-DISK-MOUNTPOINT}
nonce=$(cat "$disk/nonce")
mark() { echo "KILN-$nonce $*"; }

mark agent-start "$(cut -d' ' -f1 /proc/uptime)"
# A heartbeat while steps run: Kiln takes a console silent for long as a stuck guest (a paused KVM).
(while sleep 10; do mark alive; done) &
heartbeat=$!
disown "$heartbeat"  # the bare `wait` after each step waits for its output pipes only
mkdir -p "$disk/results"
aborted_doc=""
overall=success
for dir in "$disk"/plan/*/; do
    id=$(basename "$dir")
    res="$disk/results/$id"
    mkdir -p "$res"
    DOC_INDEX="" ON_FAILURE=Abort TIMEOUT=0 MAX_ATTEMPTS=1
    # shellcheck source=/dev/null
    . "$dir/meta"
    if [ "$DOC_INDEX" = "$aborted_doc" ]; then
        echo skipped >"$res/status"
        mark step-end "$id" skipped -
        continue
    fi
    mark step-start "$id"
    start=$(date +%s.%N)
    attempt=0 rc=0 message=""
    while [ "$attempt" -lt "$MAX_ATTEMPTS" ]; do
        attempt=$((attempt + 1))
        limit=()
        if [ "$TIMEOUT" -gt 0 ]; then limit=(timeout --kill-after=10 "$TIMEOUT"); fi
        began=$(date +%s)
        (cd /root 2>/dev/null || cd /; exec "${limit[@]}" bash "$dir/run" </dev/null) \
            > >(tee "$res/stdout") 2> >(tee "$res/stderr" >&2)
        rc=$?
        wait
        if [ "$rc" -eq 0 ]; then
            message=""
            break
        elif [ "$rc" -eq 194 ]; then
            message="exit code 194 asks for a reboot, which Kiln's VM tests do not support"
            break
        elif [ "$TIMEOUT" -gt 0 ] && [ "$rc" -eq 124 ] && [ $(($(date +%s) - began)) -ge "$TIMEOUT" ]; then
            message="timed out after ${TIMEOUT}s and was killed"
        else
            message="exited with code $rc"
        fi
    done
    end=$(date +%s.%N)
    if [ "$rc" -eq 0 ]; then
        status=success
    elif [ "$ON_FAILURE" = Ignore ]; then
        status=ignored-failure
    else
        status=failed
        overall=failed
        if [ "$ON_FAILURE" = Abort ]; then aborted_doc=$DOC_INDEX; fi
    fi
    echo "$status" >"$res/status"
    echo "$rc" >"$res/exit_code"
    echo "$attempt" >"$res/attempts"
    echo "$start $end" >"$res/times"
    printf '%s\n' "$message" >"$res/message"
    mark step-end "$id" "$status" "$rc"
done
kill "$heartbeat" 2>/dev/null
echo "$overall" >"$disk/results/overall"
sync
cd /
umount "$disk" || sync
mark agent-end "$overall"
