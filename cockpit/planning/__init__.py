"""Before training: the hardware doctor, the memory estimate and its calibration, the advisor.
"""
