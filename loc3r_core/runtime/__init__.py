"""Streaming inference: frames in, ego pose and layout out, questions answered from memory."""
