"""`loc3r export`: the model's runtime graphs as ONNX files for the torch-free backend."""
