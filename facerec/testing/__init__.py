"""Tools for testing facerec itself: the parsers' mutation fuzzer.
"""
