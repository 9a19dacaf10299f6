"""Files: recorded candles in freqtrade's layout (:mod:`.recorded`,
:mod:`.candle_files`), the replay source over them (:mod:`.replay`), the exposure
and signal outputs (:mod:`.outputs`), the offline analytics' tables
(:mod:`.analytics_outputs`), the portfolio commands' input files (:mod:`.holdings`:
holdings, group mappings, returns), the state directory's lock (:mod:`.statedir`),
and model-scored custom factors (:mod:`.custom_models`).
"""

__all__: list[str] = [
    "analytics_outputs",
    "candle_files",
    "custom_models",
    "holdings",
    "outputs",
    "recorded",
    "replay",
    "statedir",
]
