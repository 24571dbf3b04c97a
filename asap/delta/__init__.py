"""ASAP's delta action model: its observation, the frozen model and its Δa scaling, the aligned simulator that
applies it inside every step, and the closed-form oracle for a known PD-law gap.

Conventions (one place each): Δa is in policy-action units and shifts the joint target by ``delta_scale * Δa`` rad
(:func:`asap.delta.model.apply_delta`); π^Δ observes the state and the action applied at the same step
(:mod:`asap.delta.obs`).
"""
