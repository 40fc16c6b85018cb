"""The workspace on disk: its layout and manifest, the model store, replay buffer, journal, erasure
ledger, the writer lock (``writer``) and the recovery of what a killed command left (``recovery``).
"""
