"""Canary rollouts and the A/B gate: deploy a challenger, compare it with the champion, decide."""
