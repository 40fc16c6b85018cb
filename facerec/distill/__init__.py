"""Distilling the shipped face model from freely licensed teachers (training-time only).

``crops`` aligns a folder dataset once into a compact store; ``folds`` selects the people a model
must never see (LFW View 2 folds, the most-photographed people); ``teachers`` gives each crop its
teacher targets (dlib, precomputed; OpenCV SFace, computed); ``recipe`` trains the student.
Nothing here is needed to *run* facerec.
"""
