"""IOPO / DPO / SFT trainers, collators, losses and the quadruple builder."""
