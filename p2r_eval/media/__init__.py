"""From a video or image file to model input: frame sampling, input policies, the frame
cache, decode workers, and the synthetic clips used by the demo and the tests."""
