"""One patient's exam: ``ExamSession`` (a tally, a journal and the verdict, the report written
once after it) and ``run_exam`` (``driver``: sessions fed from a frame source, one per
patient/study group, with limits and a stop request).
"""
