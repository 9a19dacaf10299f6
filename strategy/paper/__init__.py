"""The paper-trading book: fills, positions and P&L from published signals
(pure; the process around it lives in the composition root).
"""

__all__: list[str] = []
