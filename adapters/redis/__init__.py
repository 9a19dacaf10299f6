"""Redis: the sink that publishes signals atomically (:mod:`.sink`) through its
transaction writer (:mod:`.writer`) on a RESP connection (:mod:`.resp`) with the
bytes of :mod:`.wire`; the crash-safe spool (:mod:`.spool`) on its files
(:mod:`.spool_files`) and the in-memory backlog behind it (:mod:`.backlog`); the
embedded server (:mod:`.server`); the latest market state read back for the
portfolio commands (:mod:`.snapshot_reader`); the consumer-group subscriber (:mod:`.subscriber`)
with its group commands (:mod:`.consumer_group`), its checks
(:mod:`.subscriber_checks`) and its terminal and JSON output (:mod:`.subscriber_output`).
"""

__all__: list[str] = [
    "backlog",
    "common",
    "consumer_group",
    "resp",
    "server",
    "sink",
    "snapshot_reader",
    "spool",
    "spool_files",
    "subscriber",
    "subscriber_checks",
    "subscriber_output",
    "wire",
    "writer",
]
