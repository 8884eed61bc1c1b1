#!/usr/bin/env bash
# Carry more than one device call can: a device call takes the working tree plus its `carry` paths up
# to 64 MiB, and the tree already holds the shipped default model (~47 MB). So the wheels and GL
# packages a GPU recipe needs (PyAV alone is 36 MB) travel in parts, one ignored folder per call; the
# device keeps ignored folders from earlier calls while it stays warm, and the last call joins them.
#
#   recipes/carry_parts.sh split SIZE_MB PATH...   # here: .carry1/, .carry2/, ... each <= SIZE_MB
#   recipes/carry_parts.sh check                   # there (repo root): stash this call's part, say what is there
#   recipes/carry_parts.sh join DEST               # there: stash, then unpack the stashed parts into DEST
#
# Here, once: `echo '/.carry*/' >> .git/info/exclude`. Then make call N with carry=[".carryN"] and a
# command that only returns (`recipes/carry_parts.sh check`), call after call before the machine idles
# out; the last call runs `recipes/carry_parts.sh join /tmp/carry` and its work. A carried folder is gone
# from the machine's tree at the next call that does not name it, so check and join first copy the parts
# present into a stash outside the tree (CARRY_STASH, default /tmp/carry-parts), which lasts while the
# machine stays warm. Each part names the count and a checksum of the whole, so a missing or stale part is
# an error, not a broken install.
set -euo pipefail
cmd=${1:?usage: carry_parts.sh split SIZE_MB PATH... | join DEST | check}
shift
case $cmd in
    split)
        size=${1:?split needs SIZE_MB}; shift
        (( $# )) || { echo "split needs the paths to carry" >&2; exit 2; }
        rm -rf .carry[0-9]*
        tmp=$(mktemp -d)
        tar cf "$tmp/all.tar" "$@"
        sum=$(sha256sum "$tmp/all.tar" | cut -c1-16)
        split -b "${size}M" -d -a 2 "$tmp/all.tar" "$tmp/part-"
        parts=("$tmp"/part-*)
        for i in "${!parts[@]}"; do
            n=$((i + 1)); mkdir -p ".carry$n"
            mv "${parts[$i]}" ".carry$n/$(basename "${parts[$i]}")"
            echo "${#parts[@]} $sum" > ".carry$n/manifest"
        done
        rm -rf "$tmp"
        du -sh .carry[0-9]* ;;
    check|join)
        shopt -s nullglob
        stash=${CARRY_STASH:-/tmp/carry-parts}; mkdir -p "$stash"
        for d in .carry[0-9]*/; do  # this call's part(s); parts of another split leave the stash
            for old in "$stash"/.carry[0-9]*/manifest; do
                cmp -s "$old" "$d/manifest" || rm -rf "$(dirname "$old")"
            done
            rm -rf "$stash/$d"; cp -r "$d" "$stash/"
        done
        dest=""; [[ $cmd == join ]] && dest=$(realpath -m "${1:?join needs DEST}")
        cd "$stash"
        manifests=(.carry[0-9]*/manifest)
        (( ${#manifests[@]} )) || { echo "no .carryN/ parts here or in $stash" >&2; exit 1; }
        read -r total sum < "${manifests[0]}"
        for m in "${manifests[@]}"; do
            [[ $(cat "$m") == "$total $sum" ]] || { echo "$m is from another split ($(cat "$m") vs $total $sum)" >&2; exit 1; }
        done
        echo "${#manifests[@]} of $total parts present (checksum $sum)"
        [[ $cmd == check ]] && exit 0
        (( ${#manifests[@]} == total )) || { echo "missing parts: carry the other .carryN folders first" >&2; exit 1; }
        mkdir -p "$dest"
        files=(); for d in $(ls -d .carry[0-9]* | sort -V); do files+=("$d"/part-*); done
        got=$(cat "${files[@]}" | sha256sum | cut -c1-16)
        [[ $got == "$sum" ]] || { echo "joined parts have checksum $got, expected $sum" >&2; exit 1; }
        cat "${files[@]}" | tar xf - -C "$dest"
        echo "unpacked into $dest" ;;
    *) echo "unknown command $cmd (split, join, check)" >&2; exit 2 ;;
esac
