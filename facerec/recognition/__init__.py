"""Recognition over a workspace: the face pipeline (detect, align, embed, search, verify, calibrate)
and changing who is enrolled (``enrollment``).
"""
