"""Decision code: policy, strikes, appeals, enforcement events, statements of reasons and
transparency cells, as plain Python. Nothing here imports Beam or a media or ML library, so a
policy file is checked, and a decision replayed, without either; `transforms/` wraps these
functions in Beam composites.
"""
