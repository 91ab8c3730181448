"""Synthetic slides for the demo, the tests, the benchmarks and the fuzzer.

Not imported by ``import wsikit``: nothing at run time depends on these writers.

- :mod:`.svs`: a tissue-like texture and an Aperio-style pyramidal SVS;
- :mod:`.dicom`: a VL Whole Slide Microscopy series in any of several transfer syntaxes;
- :mod:`.backends`: one small slide per backend, and whether a backend can take part here.
"""
