"""Forgetting on facerec's model: LoRA adapters (``lora``), GS-LoRA / GS-LoRA++ unlearning
(``gslora``), the forget transaction over a workspace (``request``) and its metrics (``metrics``)."""
