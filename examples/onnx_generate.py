"""Greedy text from a language model's step graph: python onnx_generate.py OUT.step.onnx"""

import json
import sys

import numpy as np
import onnxruntime as ort

session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
meta = session.get_modelmeta().custom_metadata_map
vocabulary = json.loads(meta["vocabulary"])  # index = token id
token = vocabulary.index(meta["prime"])  # start after a newline (or the first token)
state = {i.name: np.zeros([1 if d == "batch" else d for d in i.shape], np.float32)
         for i in session.get_inputs() if i.name != "token"}  # fmt: skip
text = []
for _ in range(200):
    logits, *new = session.run(None, {"token": np.array([token]), **state})
    state, token = dict(zip(state, new, strict=True)), int(np.argmax(logits[0]))
    text.append(vocabulary[token])
print(("" if meta["level"] == "char" else " ").join(text))  # words: see meta["join"]
