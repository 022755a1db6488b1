"""What people read, drawn from results and never from a model: CAM overlays on the bundle's
fixed scale (``overlay``), the summary and printable page (``report``), the exam as DICOM SR and
SC (``dicom_results``).
"""
