"""The synthetic spatial world: procedural rooms, furniture, camera paths, MuJoCo renders and
exact ground truth (poses, depth, instances, situations, situated questions)."""
