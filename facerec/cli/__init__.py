"""The ``facerec`` command line: argument parsing, the commands, their human-readable reports and the
demo. A front end: nothing in the library imports it.
"""
