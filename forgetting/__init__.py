"""GS-LoRA continual forgetting and baselines, on facerec's model. Built in the forgetting issue; empty until then."""
