"""CMC: Calibrating Multimodal Consensus for Emotion Recognition (Zhong et al. 2025), as a mer-bench plugin."""
