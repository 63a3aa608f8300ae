"""dixtill_lib: the library behind the dixtill-book — data, teacher, explanations, students,
distillation losses, compression baselines and RetriKT. Chapters call it; it holds all logic."""
__version__ = "0.1.0"
