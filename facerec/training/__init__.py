"""Training: the recipe's settings, the margin-softmax training loop, training a workspace from a folder
dataset (``run``) and converting other projects' checkpoints (``convert``).
"""
