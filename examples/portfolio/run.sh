#!/bin/sh
# The portfolio commands on the recorded Binance 1h candles beside the repository:
# the portfolio's exposures, tilt, risk and VaR/ES with its sectors and regions;
# its returns regressed on the factor returns; the symbols that carry a small-cap,
# high-momentum tilt; the trades toward size -0.5 and momentum +0.3.
#
#   examples/portfolio/run.sh            (from anywhere; factorcast installed)
#   DATA=/path/to/candles AT=2021-05-01T00:00Z examples/portfolio/run.sh
#   FACTORCAST="python -m factorcast.strategy.app" examples/portfolio/run.sh
#
# Each command runs the candles through the engine (a few seconds each); --json
# on any of them prints one JSON object instead of the tables.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
DATA=${DATA:-$HERE/../../../shared/data/binance-1h}
FACTORCAST=${FACTORCAST:-factorcast}
WHEN=${AT:+--at $AT}
QUIET="--log-level warning"

set -x
$FACTORCAST portfolio --holdings "$HERE/holdings.csv" --groups "$HERE/groups.csv" \
    --data "$DATA" $WHEN $QUIET
$FACTORCAST factor regress --holdings "$HERE/holdings.csv" --data "$DATA" $WHEN $QUIET
$FACTORCAST factor scan --want size=-1,momentum=1 --top 5 --data "$DATA" $WHEN $QUIET
$FACTORCAST factor suggest --holdings "$HERE/holdings.csv" --target size=-0.5,momentum=0.3 \
    --data "$DATA" $WHEN $QUIET
