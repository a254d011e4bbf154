"""Run folders and what is read back from them: folder layout and records,
checkpoints, evaluation, inference on input images, gradient records, ONNX
export and the comparison of several runs.
"""
