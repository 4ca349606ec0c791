"""The Loc3R model: a LLaVA-style VLM with camera-prior tokens and spatial heads."""
