"""Instructions for each DSPy signature, as markdown files shipped as package data."""
