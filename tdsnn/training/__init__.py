"""Training: the ``tdsnn-train`` command and the pieces of its pipeline.

config    options (TrainConfig), their typed parser and CLI flags
runtime   rank, device and the torchrun process group
order     which items each process sees, seeded augmentation
objective task loss + topographic term
schedule  warm-up + cosine learning rate
metrics   per-epoch metrics rows and files
state     resumable checkpoint generations
loop      the fit loop of one stage
pipeline  the aux, swap and train stages, run acceptance and records
cli       ``tdsnn-train`` (``python -m tdsnn.train``)
"""
