"""Files: recorded candles in freqtrade's layout (:mod:`.recorded`,
:mod:`.candle_files`), the replay source over them (:mod:`.replay`), the exposure
and signal outputs (:mod:`.outputs`), the offline analytics' tables
(:mod:`.analytics_outputs`), and the state directory's lock (:mod:`.statedir`).
"""

__all__: list[str] = [
    "analytics_outputs",
    "candle_files",
    "outputs",
    "recorded",
    "replay",
    "statedir",
]
