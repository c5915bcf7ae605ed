"""The `train_ddp` component."""
