"""deblur stage."""
