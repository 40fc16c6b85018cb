"""The ground floor: errors a user can cause, atomic file writes, names, progress bars, the device, and
import-time compatibility. Imports nothing else of facerec.
"""
