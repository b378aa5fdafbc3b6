#!/usr/bin/env bash
# freshet-test: no-shared-stack (runs beside the tests that use the suite's Kafka + Redis)
# `freshet report DIR` after a replay: one self-contained HTML page whose numbers are the checkpoint's
# (the counters and join accounting `freshet inspect` prints, the progressive metrics the replay
# printed), with a gnuplot SVG per task, opened in headless chromium for a screenshot that must show
# something. The screenshot stays at $FRESHET_BUILD_DIR/report-html/report.png (printed). Then the
# history's retention (history.keep) as the page shows it, and the page without gnuplot: its tables,
# a note that the plots need gnuplot, exit status 1. No broker or Redis needed.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
out_dir="${FRESHET_BUILD_DIR:-$fr_work}/report-html"
mkdir -p "$out_dir"
html="$out_dir/report.html" png="$out_dir/report.png"
rm -f "$html" "$png"

# 12 days: conversions mature (the attribution window is 7 days), so every task has a history
"$FRESHET_BIN" gen --out "$fr_work/events.jsonl" --impressions 30000 --days 12 --seed 23 2>/dev/null
cfg() { echo "{\"checkpoint\": {\"dir\": \"$fr_work/$1\", \"every_seconds\": 0, \"every_samples\": 4000}, \"redis\": {\"host\": \"\"}$2}" >"$fr_work/$1.json"; }
cfg state ""
"$FRESHET_BIN" replay "$fr_work/events.jsonl" -c "$fr_work/state.json" >"$fr_work/replay.txt" 2>"$fr_work/replay.err" ||
  fr_fail "replay failed: $(tail -n 3 "$fr_work/replay.err")"
"$FRESHET_BIN" inspect "$fr_work/state" >"$fr_work/inspect.txt" || fr_fail "inspect failed"
"$FRESHET_BIN" report "$fr_work/state" --out "$html" >"$fr_work/report.out" 2>"$fr_work/report.err" ||
  fr_fail "report failed: $(cat "$fr_work/report.err")"
grep -q "^report .*report.html: [0-9]* buckets of event time, 4 scenarios" "$fr_work/report.out" ||
  fr_fail "report did not say what it wrote: $(cat "$fr_work/report.out")"

# the sections, three plots, nothing loaded from elsewhere
for id in summary metrics plots plot-ctr plot-cvr plot-ctcvr join input buckets; do
  grep -q "id=\"$id\"" "$html" || fr_fail "the page has no section \"$id\""
done
[[ $(grep -c '^<svg' "$html") == 3 ]] || fr_fail "expected 3 inline SVG plots, found $(grep -c '^<svg' "$html")"
grep -Eo "(src|href)=[\"'][^\"'#][^\"']*" "$html" | grep -q . &&
  fr_fail "the page refers to something outside it: $(grep -Eo "(src|href)=[\"'][^\"'#][^\"']*" "$html" | head -n 3)"
grep -qi '<script\|<link\|@import\|url(' "$html" && fr_fail "the page loads a script, a stylesheet or a URL"
grep -q 'no samples define it yet' "$html" && fr_fail "a panel is empty after 12 days of events"

# the numbers are the checkpoint's, as inspect and the replay print them
consumed=$(sed -n 's/^consumed=\([0-9]*\) .*/\1/p' "$fr_work/inspect.txt")
trained=$(fr_field samples_trained "$fr_work/inspect.txt")
read -r p_imp p_click p_conv < <(sed -n 's/^watermark=.* pending impressions=\([0-9]*\) clicks=\([0-9]*\) conversions=\([0-9]*\)$/\1 \2 \3/p' "$fr_work/inspect.txt")
emitted=$(sed -n 's/^samples emitted click_window=\([0-9]*\) .*/\1/p' "$fr_work/inspect.txt")
[[ -n $consumed && -n $trained && -n $p_imp && -n $emitted ]] || fr_fail "inspect output not understood: $(cat "$fr_work/inspect.txt")"
grep -q "<th class=\"l\">consumed</th><td>$consumed</td>" "$html" || fr_fail "the page does not say consumed=$consumed"
grep -q "<th class=\"l\">samples_trained</th><td>$trained</td>" "$html" || fr_fail "the page does not say samples_trained=$trained"
for row in "impression $p_imp" "click $p_click" "conversion $p_conv"; do
  set -- $row
  grep -Eq "<tr><th class=\"l\">$1</th><td>[0-9]+</td><td>[0-9]+</td><td>$2</td>" "$html" ||
    fr_fail "the join table does not say $2 ${1}s pending"
done
# events = joined + pending + dropped, row by row
awk -F'</?t[dh][^>]*>' '/^<tr><th class="l">(impression|click|conversion)<\/th>/ {
    n = 0; for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+$/) v[++n] = $i
    d = 0; for (i = 4; i <= n; i++) d += v[i]
    if (v[1] != v[2] + v[3] + d) { print "unbalanced: " $0; bad = 1 } ; rows++ }
  END { exit bad || rows != 3 }' "$html" || fr_fail "the join table does not balance"
grep -q "<td class=\"l\">click_window</td><td>$emitted</td>" "$html" || fr_fail "the page does not say click_window=$emitted"
for task in ctr cvr ctcvr; do
  want=$(awk -v t=$task '$1 == t && $2 == "all" { printf "<td>%s</td><td>[0-9.]+</td><td>%s</td><td>%s</td>", $3, $4, $5 }' "$fr_work/replay.txt")
  [[ -n $want ]] || fr_fail "the replay printed no $task metrics"
  grep -Eq "<tr><td class=\"l\">$task</td><td class=\"l\">all</td>$want" "$html" ||
    fr_fail "the page's $task progressive metrics differ from the replay's ($want)"
done
buckets=$(grep -o '[0-9]* buckets ([0-9]* closed' "$html" | head -n 1)
[[ $buckets =~ ^([0-9]+)\ buckets ]] && ((BASH_REMATCH[1] > 200)) || fr_fail "12 days in 1 h buckets, yet: $buckets"
kept=$(fr_field kept "$fr_work/inspect.txt")
grep -q "^history closed=$kept kept=$kept open=yes bucket_ms=3600000$" "$fr_work/inspect.txt" ||
  fr_fail "inspect's history line: $(grep '^history' "$fr_work/inspect.txt")"
[[ $buckets == "$((kept + 1)) buckets ($kept closed" ]] || fr_fail "the page's buckets ($buckets) are not inspect's ($kept kept and the open one)"

# a screenshot of the page as a browser draws it
command -v chromium >/dev/null || { echo "SKIP: chromium not found (deploy/install-deps.sh installs it)" >&2; exit 77; }
timeout 120 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1200,2600 \
  --screenshot="$png" "file://$html" >"$fr_work/chromium.log" 2>&1 || fr_fail "chromium failed: $(tail -n 3 "$fr_work/chromium.log")"
[[ -s $png ]] || fr_fail "chromium wrote no screenshot"
size=$(stat -c %s "$png")
((size > 100000)) || fr_fail "the screenshot is $size bytes: a blank page?"
# decoded: most of a blank page is one colour; the plots' lines add many
python3 - "$png" <<'PY' || fr_fail "the screenshot does not show the page's tables and plots"
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n"
pos, idat, w = 8, b"", 0
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
        assert depth == 8 and ctype in (2, 6), (depth, ctype)
        bpp = 3 if ctype == 2 else 4
    elif kind == b"IDAT":
        idat += body
    pos += 12 + n
raw, stride, prev, colours, ink = zlib.decompress(idat), w * bpp, bytearray(w * bpp), set(), 0
for y in range(h):
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0
        b, c = prev[i], prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    for x in range(0, stride, bpp * 2):
        px = bytes(line[x:x + 3]); colours.add(px); ink += px != b"\xff\xff\xff"
    prev = line
share = ink / (h * w / 2)
print(f"screenshot {w}x{h}: {len(colours)} colours, {100 * share:.1f}% of it not white")
sys.exit(0 if len(colours) > 50 and share > 0.03 else 1)
PY

# retention: with history.keep 5 the checkpoint keeps the newest 5 closed buckets (and the open one)
cfg kept ', "history": {"keep": 5, "bucket": "6h"}'
"$FRESHET_BIN" replay "$fr_work/events.jsonl" -c "$fr_work/kept.json" >/dev/null 2>&1 || fr_fail "replay with history.keep failed"
"$FRESHET_BIN" report "$fr_work/kept" --out "$fr_work/kept.html" >/dev/null 2>&1 || fr_fail "report of the kept state failed"
"$FRESHET_BIN" inspect "$fr_work/kept" | grep -Eq '^history closed=(4[0-9]) kept=5 open=yes bucket_ms=21600000$' ||
  fr_fail "inspect does not say 5 of about 48 buckets kept: $("$FRESHET_BIN" inspect "$fr_work/kept" | grep '^history')"
grep -q '6 buckets (5 closed, the last still open)' "$fr_work/kept.html" ||
  fr_fail "history.keep 5 should keep 5 closed buckets: $(grep -o '[0-9]* buckets ([^)]*)' "$fr_work/kept.html")"
grep -q '21600 s of event time' "$fr_work/kept.html" || fr_fail "history.bucket 6h not shown as 21600 s"

# without gnuplot: the tables, a note, exit status 1
rc=0
env PATH=/nonexistent "$FRESHET_BIN" report "$fr_work/state" --out "$fr_work/plain.html" 2>"$fr_work/plain.err" || rc=$?
[[ $rc == 1 ]] || fr_fail "report without gnuplot exited $rc, expected 1"
grep -q 'the plots need gnuplot: gnuplot is not installed' "$fr_work/plain.err" || fr_fail "no clear error: $(cat "$fr_work/plain.err")"
grep -q 'The plots need gnuplot' "$fr_work/plain.html" || fr_fail "the page does not say the plots need gnuplot"
grep -q '<svg' "$fr_work/plain.html" && fr_fail "a plot without gnuplot?"
grep -q "<th class=\"l\">consumed</th><td>$consumed</td>" "$fr_work/plain.html" || fr_fail "the page without gnuplot lost its tables"

echo "screenshot: $png"
fr_pass "report of $buckets) buckets matches inspect (consumed=$consumed, samples_trained=$trained, pending $p_imp/$p_click/$p_conv) and the replay's metrics; 3 SVG plots; screenshot $png ($size bytes); keep=5 kept 5; without gnuplot: tables and a note"
