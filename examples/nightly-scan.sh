#!/bin/sh
# Nightly scan for cron: scan only new photos, then rebuild the report. Silent unless something fails.
#   15 2 * * *  /path/to/nightly-scan.sh /srv/photos /srv/reports
set -eu
photos=${1:?usage: nightly-scan.sh PHOTO_DIR REPORT_DIR}
reports=${2:?usage: nightly-scan.sh PHOTO_DIR REPORT_DIR}
agebatch=${AGEBATCH:-agebatch}

"$agebatch" scan "$photos" --out "$reports/results.csv" --resume --wait --quiet
"$agebatch" report "$reports/results.csv" --out "$reports/report.html" --quiet
