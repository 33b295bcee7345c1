"""SynCL, the training strategy: how the tracker is trained, never how it runs.

Its parts, each behind a ``train.syncl`` switch:
- `c_decoder`: the C-decoder, the decoder's weights run without self-attention
  (``hybrid_matching``);
- `matching`: task-specific hybrid matching. S-decoder detection queries one-to-one
  to new-born objects, C-decoder detection queries one-to-many (at most k) to
  persistent ones, track queries to their own objects in both;
- `query_filter`: dynamic query filtering of the one-to-many pairs with a
  two-component Gaussian mixture over their costs (``gmm_filter``);
- `contrastive`: the instance-aware contrastive loss and its train-only projector
  (``contrastive``).

Nothing here is part of inference or of the exported graphs.
`syncl_ros.training.clip_pass` runs a training clip and adds these losses to the others.
"""
