"""Files: recorded candles in freqtrade's layout (:mod:`.recorded`,
:mod:`.candle_files`), the replay source over them (:mod:`.replay`), the exposure
and signal outputs (:mod:`.outputs`), the offline analytics' tables
(:mod:`.analytics_outputs`), the portfolio commands' input files (:mod:`.holdings`:
holdings, group mappings, returns), and the state directory's lock
(:mod:`.statedir`).
"""

__all__: list[str] = [
    "analytics_outputs",
    "candle_files",
    "holdings",
    "outputs",
    "recorded",
    "replay",
    "statedir",
]
