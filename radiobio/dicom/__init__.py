"""DICOM in and out: scan a PACS export into a series table, read RTSTRUCT and DICOM-SEG as label maps on their
source series, and write masks back as RTSTRUCT or DICOM-SEG for review in a viewer or a planning system."""
