"""Redis: the sink that publishes signals atomically (:mod:`.sink`) through its
transaction writer (:mod:`.writer`) on a RESP connection (:mod:`.resp`) with the
bytes of :mod:`.wire`; the crash-safe spool (:mod:`.spool`) and the in-memory
backlog behind it (:mod:`.backlog`); the embedded server (:mod:`.server`); the
consumer-group subscriber (:mod:`.subscriber`) and its terminal and JSON output
(:mod:`.subscriber_output`).
"""

__all__: list[str] = [
    "backlog",
    "common",
    "resp",
    "server",
    "sink",
    "spool",
    "subscriber",
    "subscriber_output",
    "wire",
    "writer",
]
