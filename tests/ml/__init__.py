"""The ML helpers: scores, features, ranking, feedback, binding."""
