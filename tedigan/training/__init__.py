"""tedigan.training"""
