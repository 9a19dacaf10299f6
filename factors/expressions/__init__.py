"""Custom factors: the operator grammar of ANALYTICS.md section 9 compiled to
incremental nodes over one bar's arrays, plug-ins and model-scored factors.
"""

__all__: list[str] = []
