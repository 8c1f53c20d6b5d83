"""A trained model at work: its folder read and checked, the backends that run it, the Python API, ONNX export and explanations.

Nothing here imports torch unless the torch backend or export is asked for, so prediction on onnxruntime starts fast.
"""
