"""FAISS face gallery (numpy + faiss only). Built in the gallery issue; empty until then."""
