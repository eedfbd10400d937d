"""Training pipelines for the product-group classifier and the price model."""
